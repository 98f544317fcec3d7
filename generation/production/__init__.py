"""Linear production: premise to drafted series, then rendered, dubbed, subtitled and labelled episodes."""
