"""The lint checks, by what they read: data flow, the model as a whole, the optimizer."""
