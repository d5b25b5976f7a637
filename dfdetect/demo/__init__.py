"""The built-in synthetic demo data set (``render``) and its sanity baselines (``baselines``)."""
