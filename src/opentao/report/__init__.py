"""``tao report``: the data, plots and HTML page of a run report (and the building blocks of /dashboard)."""
