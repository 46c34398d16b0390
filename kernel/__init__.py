"""The kernel: small pure helpers every layer may use; it imports no app of the project."""
