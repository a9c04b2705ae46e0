"""Examples on real public data: each a map (package data) and the code that lands its dataset."""
