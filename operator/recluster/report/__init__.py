"""Reports of runs: the cluster map and HTML page (build.py, mapplot.py, page.py), and
where to find them (locate.py, which imports neither the engine nor matplotlib)."""
