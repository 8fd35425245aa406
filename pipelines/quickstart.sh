#!/usr/bin/env bash
# The main job on the bundled data: prepare S&P 500 windows, fit the classical generators, sample
# and evaluate them. Writes runs/quickstart/ (data, models, samples, report.html, metrics.json).
set -euo pipefail
out=${1:-runs/quickstart}
synthfin prepare --source bundled --tickers SP500 --window 64 --out "$out/data"
samples=()
for model in garch bootstrap gaussian; do
  synthfin train --model "$model" --data "$out/data" --out "$out/models/$model"
  synthfin sample --model-dir "$out/models/$model" --n 2000 --seed 0 --out "$out/samples/$model.npy"
  samples+=(--samples "$model=$out/samples/$model.npy")
done
synthfin train --model garch --set gjr=true --set dist=skewt --data "$out/data" --out "$out/models/gjr"
synthfin sample --model-dir "$out/models/gjr" --n 2000 --seed 0 --out "$out/samples/gjr.npy"
synthfin evaluate --data "$out/data" "${samples[@]}" --samples "gjr=$out/samples/gjr.npy" --out "$out/report"
