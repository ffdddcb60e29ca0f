"""Data that ships offline (scikit-learn's bundled sets) and readers for files the user gives.

Nothing here downloads anything. Modules: one per source (add, do not rewrite, entries).
"""
