"""``hpsearch report``: the analysis of a study as JSON, Markdown or one HTML page.

- :mod:`.build`: :func:`report` itself, and the JSON document every format is made from;
- :mod:`.format`: tables and cells shared by every format;
- :mod:`.markdown`, :mod:`.html` and :mod:`.figures`: the formats and the page's figures;
- :mod:`.publish`: the file (atomically), the study's artifact, note and dashboard table.
"""

from hpsearch.report.build import DEFAULT_OUT, FORMATS, SCHEMA, ReportResult, report

__all__ = ["DEFAULT_OUT", "FORMATS", "SCHEMA", "ReportResult", "report"]
