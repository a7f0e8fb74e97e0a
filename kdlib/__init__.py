"""kdlib: knowledge distillation for Arabic speech recognition."""
