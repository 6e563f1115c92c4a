"""The paper's study (Durai 2024): its reported facts, its claims with verdicts, predictions and Figures 1-6."""
