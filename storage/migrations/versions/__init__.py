"""One revision per schema or data change, oldest first: 0001_baseline, 0002_..."""
