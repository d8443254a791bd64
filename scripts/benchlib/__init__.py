"""scripts/bench, one module per part (latency, apply, rules, memory, flood, rates, state,
diff), each with measure(lab, args), rows(result) and NOTES; cli.py runs them and prints the
table. lab.py, specs.py and trafgen.py hold what the parts share."""
