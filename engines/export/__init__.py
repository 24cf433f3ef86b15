"""Exports: videos (MP4/GIF/PNG sequences) of latent walks, attribute sweeps, seed grids and
training progress; PNG images; data files (latents, projections, vectors, bookmarks); session
files. No Qt here: the app's Export panel and `python main.py export` share all of it."""
from engines.export.job import ExportResult, ExportSpec, GridSpec, ProgressSpec, run_export
from engines.export.render import FrameStyle, Timing
from engines.export.session import Session, SessionError
from engines.export.timeline import Sweep, Timeline, default_timeline, prior_latents
from engines.export.writers import ExportError, format_of

__all__ = ["ExportError", "ExportResult", "ExportSpec", "FrameStyle", "GridSpec", "ProgressSpec", "Session",
           "SessionError", "Sweep", "Timeline", "Timing", "default_timeline", "format_of", "prior_latents",
           "run_export"]
