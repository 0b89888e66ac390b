"""Self-contained HTML reports rendered from stored runs (reads runs only, never model code)."""
