"""Research code that is not tensor maths: the unconstrained-feature-model
simulator (needs cvxpy for its convex cross-check) and the long-tail study
runner. Imported by name; ``import etf_plugin`` does not load it."""
