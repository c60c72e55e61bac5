"""Data preparation: face folders and synthetic faces to identity-disjoint Parquet splits."""
