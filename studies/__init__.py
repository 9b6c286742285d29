"""The bundled presets (TOML). Installed as ``hpsearch.studies`` (pyproject.toml maps this
folder into the package), so ``--preset NAME`` finds them in a wheel as in a checkout."""
