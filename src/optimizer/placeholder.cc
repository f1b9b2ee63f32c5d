// Placeholder translation unit until the optimizer lands; see optimizer.h.
