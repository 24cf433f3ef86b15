"""Compare two to four models trained on the same data set (the course notes' VAE/GAN/diffusion
trade-off table, measured on the user's own models): samples from the same seeds, a table of
metrics (engines.metrics' FD, precision/recall and likelihood where the family has one, plus
parameters, training time and sampling speed), and each model's map of the same data points.

Headless: the app's Compare window and `main.py compare` both drive `run`.
"""
from engines.compare.models import MAX_MODELS, MIN_MODELS, CompareError, DataIdentity, check_comparable, read_infos
from engines.compare.run import PROJECTIONS, Comparison, ModelResult, Options, map_indices, run
from engines.compare.table import COLUMNS, Column, Table, cell, write_csv

__all__ = ["COLUMNS", "MAX_MODELS", "MIN_MODELS", "PROJECTIONS", "Column", "CompareError", "Comparison", "DataIdentity",
           "ModelResult", "Options", "Table", "cell", "check_comparable", "map_indices", "read_infos", "run", "write_csv"]
