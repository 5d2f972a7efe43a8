"""Closed-form Hessians of objective families, where autograd's d Hessian-vector products are slow.

GPS quadratises the cost at every sampled state (docs/method.md (60)): for paper 1's neural net
that is M·N·T = 64,000 points of a 12-parameter network on 100 data points each, where d = 12
reverse passes through the batched loss dominate a GPS iteration. The two-layer net's Hessian
has a short closed form (below), exact wherever no hidden unit sits at its ReLU kink.

Two-layer net (``objectives.two_layer_net``), per data point a with label y::

    s = W a + b,  m = 1[s > 0],  r = m ⊙ s,  z = U r + c,  q = softmax(z),  e = q − onehot(y)
    J = ∂z/∂x : ∂z_k/∂U_kj = r_j,  ∂z_k/∂c_k = 1,  ∂z_k/∂W_jl = U_kj m_j a_l,  ∂z_k/∂b_j = U_kj m_j
    ∇²f = mean_i [Jᵀ (diag q − q qᵀ) J + Σ_k e_k ∇²z_k] + λ diag(1_W, 0_b, 1_U, 0_c)

with ∇²z_k's only non-zero entries ∂²z_k/∂U_kj ∂W_jl = m_j a_l and ∂²z_k/∂U_kj ∂b_j = m_j
(ReLU's second derivative is zero almost everywhere).
"""
import autograd.numpy as np
import numpy as onp

__all__ = ["unpack_net", "two_layer_net_hessian"]

CHUNK = 2048     # points per block: bounds the (chunk, N, p, d) Jacobian at ~40 MB for N = 100


def unpack_net(x, d_in, h, p):
    """x (n, d) -> W (n, h, d_in), b (n, h), U (n, p, h), c (n, p); matrices row-major (docs/method.md (7)–(8))."""
    n = x.shape[0]
    i1, i2, i3 = h * d_in, h * d_in + h, h * d_in + h + p * h
    return (np.reshape(x[:, :i1], (n, h, d_in)), x[:, i1:i2],
            np.reshape(x[:, i2:i3], (n, p, h)), x[:, i3:])


def _block(x, a, y, d_in, h, p, lam):
    """∇²f of the rows of one block: x (n, d), a (n, N, d_in), y (n, N) -> (n, d, d).

    Jᵀ(diag q − q qᵀ)J = Σ_k q_k J_kᵀ J_k − vᵀ v with v = Σ_k q_k J_k, J_k = ∂z_k/∂x (n, N, d).
    """
    n, N = a.shape[:2]
    d = x.shape[1]
    W, b, U, c = (onp.asarray(v) for v in unpack_net(x, d_in, h, p))
    s = onp.matmul(a, W.transpose(0, 2, 1)) + b[:, None, :]              # (n, N, h)
    m = (s > 0).astype(float)
    r = m * s
    z = onp.matmul(r, U.transpose(0, 2, 1)) + c[:, None, :]              # (n, N, p)
    q = onp.exp(z - z.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    e = q - (y[..., None] == onp.arange(p))
    H = onp.zeros((n, d, d))
    v = onp.zeros((n, N, d))
    for k in range(p):                  # J_k in x's order [W (h·d_in), b (h), U (p·h), c (p)]
        uk = U[:, None, k, :] * m                                        # (n, N, h)
        u_block = onp.zeros((n, N, p, h))
        u_block[:, :, k] = r
        c_block = onp.broadcast_to(onp.eye(p)[k], (n, N, p))
        Jk = onp.concatenate([(uk[..., None] * a[:, :, None, :]).reshape(n, N, h * d_in), uk,
                              u_block.reshape(n, N, p * h), c_block], axis=-1)
        qJ = q[..., k, None] * Jk
        H += onp.matmul(qJ.transpose(0, 2, 1), Jk)
        v += qJ
    H -= onp.matmul(v.transpose(0, 2, 1), v)
    # Σ_k e_k ∂²z_k/∂U_kj ∂(W_j, b_j)_l = e_k m_j ã_l, ã = [a, 1], summed over the data points
    em = (e[..., :, None] * m[..., None, :]).reshape(n, N, p * h)
    a1 = onp.concatenate([a, onp.ones((n, N, 1))], axis=-1)
    cross = onp.matmul(em.transpose(0, 2, 1), a1).reshape(n, p, h, d_in + 1)
    iwb = onp.concatenate([onp.arange(h * d_in).reshape(h, d_in),
                           (h * d_in + onp.arange(h))[:, None]], axis=1)  # (h, d_in + 1)
    rows = onp.broadcast_to((h * d_in + h + onp.arange(p * h)).reshape(p, h, 1), (p, h, d_in + 1))
    cols = onp.broadcast_to(iwb[None], (p, h, d_in + 1))
    H[:, rows, cols] += cross
    H[:, cols, rows] += cross
    reg = onp.zeros(d)
    reg[:h * d_in] = lam
    reg[h * d_in + h:h * d_in + h + p * h] = lam
    return H / N + onp.diag(reg)


def two_layer_net_hessian(x, problems, *, d_in=2, hidden=2, classes=2, lam=5e-4):
    """Per-problem Hessians of ``objectives.two_layer_net``'s loss: x (n, d) -> (n, d, d).

    problems : Dataset with a (n, N, d_in), y (n, N); the keyword arguments are the family's.
    Computed in blocks of ``CHUNK`` rows; agrees with autograd's Hessian-vector products
    (``autodiff.hessians``) away from the ReLU kinks.
    """
    x = onp.asarray(x, dtype=float)
    a, y = onp.asarray(problems.a, dtype=float), onp.asarray(problems.y)
    if x.ndim != 2 or a.shape[0] != x.shape[0]:
        raise ValueError(f"x must have shape (n, d) with n = {a.shape[0]}, got {x.shape}")
    return onp.concatenate([_block(x[i:i + CHUNK], a[i:i + CHUNK], y[i:i + CHUNK], d_in, hidden,
                                   classes, lam) for i in range(0, x.shape[0], CHUNK)]
                           or [onp.zeros((0, x.shape[1], x.shape[1]))])
