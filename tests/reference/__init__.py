"""Independent references for the kernels: ``intref`` (the integer contract of
docs/fixed-point.md, in unbounded Python integers) and ``floatref`` (the float equations
in float64 NumPy). Neither imports anything from ``edgebrain.kernels``."""
