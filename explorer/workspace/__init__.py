"""The Workspace: the evented, widget-free model of what the user explores on one loaded model
(engine, data and latents, current latent and history, bookmarks, keys, groups, vectors). Panels
observe it and change it through its methods; it never imports a panel."""
from explorer.workspace.data import ModelData, load_model_data
from explorer.workspace.workspace import Key, VectorEntry, Workspace

__all__ = ["Key", "ModelData", "VectorEntry", "Workspace", "load_model_data"]
