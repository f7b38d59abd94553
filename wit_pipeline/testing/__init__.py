"""What the tests and the benchmarks share, kept out of the runtime modules (as numpy.testing).

    commands.py       `wit` and `wit download` as a subprocess's argv
    devserver.py      a real image server on 127.0.0.1 with the web's misbehaviours
    simweb.py         many HTTPS hosts on loopback addresses, with latency (the simulated web)
    image_quality.py  SSIM of a resized image against a Pillow LANCZOS reference

Nothing here is imported by the pipeline itself; bench/ cannot import tests/, so these live in
the package.
"""
