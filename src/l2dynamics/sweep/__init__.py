"""Sweeps: (η, λ, seed) grids trained in vectorized chunks into a crash-safe SQLite store."""
