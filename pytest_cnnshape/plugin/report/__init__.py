"""The session report: gathered entries, rendered for the terminal, JSON and Markdown."""
