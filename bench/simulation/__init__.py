"""The simulation behind ``bench/simulate.py``: the seeded world (``world``), the policies it compares
(``policies``) and the event loop that plays them against each other (``engine``)."""
