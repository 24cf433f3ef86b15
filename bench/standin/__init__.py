"""Stand-in files for the public data sets (official formats, names and image counts; drawn
pixels), for machines that cannot download the real ones: files.py, clothes.py, and the script
bench/standin_data.py."""
