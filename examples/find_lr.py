"""Find a learning rate for a small MLP on scikit-learn's digits, then train with warmup + cosine.

python examples/find_lr.py            # writes lr_find.png next to where you run it
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrkit.finder import find_lr

x, y = load_digits(return_X_y=True)
data = TensorDataset(torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y))
loader = DataLoader(data, batch_size=32, shuffle=True)

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

# Three ramps (seeds 0, 1, 2) of 50 steps each; model and optimizer come back untouched.
result = find_lr(model, optimizer, loader, F.cross_entropy, num_steps=50, repeats=3)
print(result)  # suggestion, interval over the repeats, every rule, trusted or why not
result.plot("lr_find.png")

# Train 5 epochs with warmup (5%) + cosine from the suggested peak.
epochs = 5
schedule = result.schedule("cosine").resolve(total_steps=epochs * len(loader))
step = 0
for _ in range(epochs):
    for xb, yb in loader:
        for group in optimizer.param_groups:
            group["lr"] = float(schedule(step))
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        step += 1
print(f"final training loss {loss.item():.4f} after {step} steps (peak LR {result.peak_lr:.3g})")
