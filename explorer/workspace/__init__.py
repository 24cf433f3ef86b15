"""The Workspace: one object per loaded model that the panels observe and change (being written)."""
