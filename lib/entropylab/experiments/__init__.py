"""Experiments: parameter files, the sweep over their grids, one grid point, the results table, reproduction."""
