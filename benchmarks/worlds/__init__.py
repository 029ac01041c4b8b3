"""Independent test worlds: forward models the project's simulator did not write (issue #12)."""
