"""Model registry. Filled in by the models work; see ARCHITECTURE.md for the contract."""
