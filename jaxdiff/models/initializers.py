"""Parameter initialisers used by the papers' networks."""

from flax import nnx

# Glorot & Bengio 2010 uniform: the default of DDPM's (Ho et al. 2020) and DiT's layers.
XAVIER_UNIFORM = nnx.initializers.xavier_uniform()
# N(0, 0.02^2): DiT's timestep MLP and label table, GPT-style token/position embeddings.
NORMAL_002 = nnx.initializers.normal(0.02)
# N(0, 1): PyTorch's nn.Embedding default, ADM's label embedding.
STANDARD_NORMAL = nnx.initializers.normal(1.0)
# Zero init of output layers and adaLN gates, so residual branches start as the identity.
ZEROS = nnx.initializers.zeros_init()
