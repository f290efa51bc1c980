"""A study: config -> subject -> candidates -> artifacts -> attacks -> measurements -> report."""
