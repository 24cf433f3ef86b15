"""Exports: videos (MP4/GIF/PNG sequences) of latent walks, attribute sweeps, seed grids and
training progress; PNG images; data files (latents, projections, vectors, bookmarks); session
files. No Qt here: the app's Export panel and `python main.py export` share all of it."""
from .job import ExportResult, ExportSpec, GridSpec, ProgressSpec, run_export
from .render import FrameStyle, Timing
from .session import Session, SessionError
from .timeline import Sweep, Timeline, default_timeline, prior_latents
from .writers import ExportError, format_of

__all__ = ["ExportError", "ExportResult", "ExportSpec", "FrameStyle", "GridSpec", "ProgressSpec", "Session",
           "SessionError", "Sweep", "Timeline", "Timing", "default_timeline", "format_of", "prior_latents",
           "run_export"]
