"""The transfer benchmark (bench/transfer.py is the script; see bench/README.md)."""
