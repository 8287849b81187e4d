"""Table operations that produce commits: write (create/append/overwrite), alter, rewrite."""
