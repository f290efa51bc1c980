"""Small dependency-free helpers shared by every stage (and shipped to devices)."""
