"""Run by the bubble environment's Python (where ACRO is installed) to make real ACRO outputs.

    cd SCRATCH && python acro_session.py OUTPUT_FOLDER [FIGURE.png]   (ACRO writes figures under ./acro_artifacts/)

Writes, through ACRO, a frequency table with a cell of 3 persons, one whose cells are all 10 or
more, a table of means with a dominated cell, and a histogram (PNG); then `acro.finalise(..., "json")`.
"""

import sys

import numpy as np
import pandas as pd
from acro import ACRO

folder = sys.argv[1]
acro = ACRO(suppress=False)
rng = np.random.default_rng(7)
small = pd.DataFrame({"sex": ["F"] * 60 + ["M"] * 43,
                      "treated": ["yes"] * 50 + ["no"] * 10 + ["yes"] * 40 + ["no"] * 3})
acro.crosstab(small.sex, small.treated)
large = pd.DataFrame({"sex": ["F"] * 60 + ["M"] * 45,
                      "treated": ["yes"] * 30 + ["no"] * 30 + ["yes"] * 20 + ["no"] * 25})
acro.crosstab(large.sex, large.treated)
income = np.concatenate([rng.integers(100, 200, 59), [100000], rng.integers(100, 200, 45)])
means = pd.DataFrame({"sex": ["F"] * 60 + ["M"] * 45, "treated": large.treated, "cost": income})
acro.crosstab(means.sex, means.treated, values=means.cost, aggfunc="mean")
acro.hist(large.assign(age=rng.integers(20, 90, 105)), "age", filename="histogram.png")
acro.finalise(folder, "json")
print("done")

if len(sys.argv) > 2:  # a figure made without ACRO, as a researcher saves one with matplotlib
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(3, 2))
    axes.plot([2019, 2020, 2021], [0.31, 0.35, 0.42])
    figure.savefig(sys.argv[2], format="png")
