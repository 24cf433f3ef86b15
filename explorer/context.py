"""What every panel is given: the shared current-model session and the user's settings."""
from __future__ import annotations

from dataclasses import dataclass

from explorer.session import ModelSession
from explorer.settings import Settings


@dataclass
class Context:
    session: ModelSession
    settings: Settings

    @property
    def workspace(self):
        """The loaded model's Workspace (None when no model is loaded)."""
        return self.session.workspace

    def message(self, text: str, timeout_ms: int = 6000) -> None:
        """A transient line in the status bar (the window connects it)."""
        self.session.status_message.emit(text, timeout_ms)
