"""Compare: two to four models of the library side by side (a window of its own, beside the
panels: it spans models). The computing is `engines.compare`'s, run in a worker."""
