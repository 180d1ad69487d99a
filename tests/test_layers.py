"""The lowerings compute the same function as Flax/XLA's plain layers, values and gradients.

The CPU's ``Lowering`` (``FastConv`` with Winograd, ``FastBatchNorm``, the gather-form max-pool
gradient and sliced evaluation pools) against ``lowering.plain()`` (``nn.Conv``,
``nn.BatchNorm``, autodiff of ``reduce_window``), on every kernel/stride/padding form GoogLeNet
and Inception v3 use (1x1, 3x3, 5x5, 7x7/2, 1x7, 7x1, 1x3, 3x1, VALID and padded, stride 1 and 2),
and Winograd 3x3s (within float32 rounding). In bfloat16: Winograd within one bf16 rounding,
products and pools accumulated in float32, and max_pool's sliced forward where no gradient is
taken. Also which lowering each backend gets, and that none changes a model's parameters.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inception_jax import lowering
from inception_jax import models
from inception_jax.lowering import batch_norm as batch_norm_lib
from inception_jax.lowering import conv as conv_lib
from inception_jax.lowering import max_pool as max_pool_lib
from inception_jax.lowering import winograd
from inception_jax.models import layers

CPU = lowering.for_backend('cpu', network='googlenet')
PLAIN = lowering.plain()

# (H=W, in, out, kernel, stride, padding): the layer forms of both models, small.
CASES = [
    (9, 5, 7, (1, 1), 1, 0),          # 1x1 (matrix product, both directions)
    (9, 5, 7, (3, 3), 1, 1),          # 3x3 padded
    (10, 4, 6, (3, 3), 2, 0),         # 3x3/2 VALID (grid reductions, v3 stem)
    (9, 4, 3, (5, 5), 1, 2),          # 5x5
    (11, 3, 4, (7, 7), 2, 3),         # GoogLeNet conv1 7x7/2
    (8, 4, 5, (1, 7), 1, (0, 3)),     # v3 1x7 / 7x1, 1x3 / 3x1
    (8, 4, 5, (7, 1), 1, (3, 0)),
    (8, 4, 5, (3, 1), 1, (1, 0)),
    (5, 6, 4, (1, 1), 2, 0),          # strided 1x1 (not in the models: conv path)
    (9, 5, 7, (3, 3), 1, 'SAME'),
]


def _conv_pair(features, kernel, stride, padding, use_bias=False, dtype=jnp.float32):
  """nn.Conv and the CPU's convolution (FastConv with Winograd), same arguments."""
  kw = dict(features=features, kernel_size=kernel, strides=stride, padding=padding,
            use_bias=use_bias, dtype=dtype)
  return PLAIN.conv_factory()(**kw), CPU.conv_factory()(**kw)


def _check(plain, fast, x, rtol=1e-5):
  variables = plain.init(jax.random.PRNGKey(0), x)
  fast_vars = fast.init(jax.random.PRNGKey(0), x)
  # Same parameter names, shapes and (same initialiser, same key) values.
  jax.tree.map(np.testing.assert_array_equal, variables, fast_vars)
  if 'bias' in variables['params']:
    variables = jax.tree.map(lambda v: v, variables)
    variables['params']['bias'] = jnp.linspace(-1, 1, variables['params']['bias'].size)
  w = jnp.asarray(np.random.RandomState(1).standard_normal(
      plain.apply(variables, x).shape), jnp.float32)

  def loss(module):
    return lambda v, x: jnp.sum(jnp.sin(module.apply(v, x).astype(jnp.float32)) * w)

  ref_y, fast_y = plain.apply(variables, x), jax.jit(fast.apply)(variables, x)
  scale = float(jnp.abs(ref_y).max())
  np.testing.assert_allclose(np.asarray(fast_y, np.float32), np.asarray(ref_y, np.float32),
                             atol=rtol * scale, rtol=0)
  ref_g = jax.grad(loss(plain), argnums=(0, 1))(variables, x)
  fast_g = jax.jit(jax.grad(loss(fast), argnums=(0, 1)))(variables, x)
  for a, b in zip(jax.tree.leaves(ref_g), jax.tree.leaves(fast_g)):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    np.testing.assert_allclose(b, a, atol=rtol * float(np.abs(a).max()), rtol=0)


@pytest.mark.parametrize('size,cin,cout,kernel,stride,padding', CASES)
def test_fast_conv_matches_nn_conv(size, cin, cout, kernel, stride, padding):
  x = jnp.asarray(np.random.RandomState(0).standard_normal((2, size, size, cin)), jnp.float32)
  _check(*_conv_pair(cout, kernel, stride, padding, use_bias=True), x)


@pytest.mark.slow  # compiles bfloat16 variants of forms tested above in float32
def test_fast_conv_bfloat16_close_to_nn_conv():
  x = jnp.asarray(np.random.RandomState(0).standard_normal((2, 9, 9, 8)), jnp.float32)
  for kernel, padding in (((1, 1), 0), ((3, 3), 1)):
    _check(*_conv_pair(8, kernel, 1, padding, dtype=jnp.bfloat16), x, rtol=3e-2)


def _primitives(jaxpr, name):
  """Every equation of primitive ``name`` in a jaxpr and the jaxprs nested in its equations."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == name:
      found.append(eqn)
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        sub = getattr(sub, 'jaxpr', sub)
        if hasattr(sub, 'eqns'):
          found += _primitives(sub, name)
  return found


def test_bfloat16_pointwise_products_accumulate_in_float32():
  """A bf16 1x1 convolution and its input gradient are bf16 x bf16 products with a float32
  result, rounded once: the only form XLA:CPU runs on the AVX512_BF16 instructions (asked for a
  bf16 result, it converts the operands to float32 and runs at float32 speed)."""
  rs = np.random.RandomState(6)
  x = jnp.asarray(rs.standard_normal((2, 5, 5, 8)), jnp.bfloat16)
  kernel = jnp.asarray(rs.standard_normal((1, 1, 8, 4)), jnp.bfloat16)
  conv = lambda x: conv_lib.conv2d(x, kernel, (1, 1), ((0, 0), (0, 0)))
  y = conv(x)
  program = jax.make_jaxpr(lambda x, g: (conv(x), jax.vjp(conv, x)[1](g)))(x, y).jaxpr
  products = [e for e in _primitives(program, 'dot_general')
              if {v.aval.dtype for v in e.invars} == {jnp.dtype(jnp.bfloat16)}]
  assert len(products) >= 2  # forward and input gradient
  assert all(e.outvars[0].aval.dtype == jnp.float32 for e in products)
  exact = jnp.einsum('bhwc,co->bhwo', x.astype(jnp.float32), kernel[0, 0].astype(jnp.float32),
                     precision='highest')
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(y, np.float32), exact, rtol=2 ** -8, atol=1e-6)


@pytest.mark.slow  # compiles four forms no model uses
def test_fast_conv_falls_back_to_nn_conv():
  """Forms conv2d does not cover (groups, dilation, 1-D) still compute what nn.Conv computes."""
  rs = np.random.RandomState(0)
  x = jnp.asarray(rs.standard_normal((2, 9, 9, 4)), jnp.float32)
  for kw in (dict(feature_group_count=2), dict(kernel_dilation=2), dict(padding='CIRCULAR')):
    args = dict(features=4, kernel_size=(3, 3), **kw)
    _check(nn.Conv(**args), lowering.FastConv(**args, winograd=True), x)
  x1 = jnp.asarray(rs.standard_normal((2, 9, 4)), jnp.float32)
  _check(nn.Conv(3, (3,)), lowering.FastConv(3, (3,)), x1)


def test_each_backend_gets_only_what_was_measured_there():
  """CPU: every lowering (Inception v3: XLA's own convolutions); GPU: the norm and pool gradients
  (cuDNN's convolutions won there); TPU and anything else: plain Flax/XLA. Values, so equal
  whenever built."""
  gpu = dataclasses.replace(PLAIN, norm=lowering.FastBatchNorm,
                            max_pool=max_pool_lib.gather_gradient)
  assert CPU == lowering.Lowering(conv=lowering.FastConv, winograd=True,
                                  norm=lowering.FastBatchNorm,
                                  max_pool=max_pool_lib.gather_gradient, sliced_eval_pool=True)
  expected = {('cpu', 'googlenet'): CPU,
              ('cpu', 'inception_v3'): dataclasses.replace(CPU, conv=nn.Conv, winograd=False),
              ('gpu', 'googlenet'): gpu, ('gpu', 'inception_v3'): gpu}
  assert {key: chosen for key, (chosen, _) in lowering.CHOICES.items()} == expected
  assert all(why for _, why in lowering.CHOICES.values())  # every entry says why
  for network in lowering.NETWORKS:
    for (backend, net), chosen in expected.items():
      if net == network:
        assert lowering.for_backend(backend, network=network) == chosen
    for backend in ('tpu', 'some_new_backend'):
      assert lowering.for_backend(backend, network=network) == PLAIN == lowering.Lowering()
    assert (lowering.for_backend(network=network)
            == lowering.for_backend(jax.default_backend(), network=network))
  assert hash(CPU) == hash(lowering.for_backend('cpu', network='googlenet'))  # a module field
  # A network the table does not know gets no one else's choice.
  for network in ('resnet50', None):
    with pytest.raises(ValueError, match='no lowering chosen'):
      lowering.for_backend('cpu', network=network)
  with pytest.raises(TypeError):
    lowering.for_backend('cpu')  # pylint: disable=missing-kwoa
  with pytest.raises(ValueError, match='winograd'):
    dataclasses.replace(CPU, conv=nn.Conv)
  with pytest.raises(ValueError, match='sliced_eval_pool'):
    dataclasses.replace(CPU, max_pool=max_pool_lib.reduce_window)


def _block_program(lw, x):
  """The jaxpr of a training-mode ConvBN + max pool's gradient under the lowering ``lw``."""
  block = layers.ConvBN(7, 3, padding=1, lowering=lw)
  variables = block.init(jax.random.PRNGKey(0), x)

  def loss(v, x):
    y, _ = block.apply(v, x, train=True, mutable=['batch_stats'])
    return jnp.sum(layers.max_pool(y, 3, 2, ceil_mode=True, lowering=lw) ** 2)
  return str(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(variables, x))


def test_plain_lowering_runs_flax_and_xla_code():
  """plain() traces no custom gradient: nn.Conv, nn.BatchNorm and reduce_window's autodiff."""
  x = jnp.ones((2, 9, 9, 5), jnp.float32)
  fast, plain = _block_program(CPU, x), _block_program(PLAIN, x)
  assert 'custom_vjp' in fast and 'select_and_scatter_add' not in fast
  assert 'custom_vjp' not in plain and 'select_and_scatter_add' in plain


def test_a_layer_on_its_own_runs_plain_not_a_networks_choice():
  """ConvBN and max_pool with no lowering run lowering.plain() on every backend: a layer never
  looks up a network's backend choice (only the networks do, once), and None is no lowering."""
  x = jnp.ones((2, 9, 9, 5), jnp.float32)
  block = layers.ConvBN(7, 3, padding=1)
  assert block.lowering == PLAIN
  variables = block.init(jax.random.PRNGKey(0), x)

  def loss(v, x):
    y, _ = block.apply(v, x, train=True, mutable=['batch_stats'])
    return jnp.sum(layers.max_pool(y, 3, 2, ceil_mode=True) ** 2)
  own = str(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(variables, x))
  assert own == _block_program(PLAIN, x)
  assert 'custom_vjp' not in own and 'select_and_scatter_add' in own
  assert layers.conv_block(True, 1.0, jnp.float32)(7, 3).lowering == PLAIN
  with pytest.raises(TypeError, match='lowering must be'):
    layers.ConvBN(7, 3, lowering=None).init(jax.random.PRNGKey(0), x)
  with pytest.raises(TypeError, match='lowering must be'):
    layers.max_pool(x, 3, 2, lowering=None)


@pytest.mark.parametrize('name,size,overrides', [
    ('googlenet_tv', 32, {}),
    pytest.param('googlenet_2014', 32, {}, marks=pytest.mark.slow),  # traces 4 more models each
    pytest.param('inception_v3', 75, dict(aux_adaptive=True), marks=pytest.mark.slow)])
def test_lowering_leaves_the_variables_unchanged(name, size, overrides):
  """Same variable names, shapes and dtypes under every lowering: checkpoints and converted
  weights load whichever ran."""
  def shapes(lw):
    model = models.create(name, width_multiplier=0.125, lowering=lw, **overrides)
    return jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=True),
                          jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  reference = shapes(PLAIN)
  for lw in (CPU, lowering.for_backend('gpu', network='googlenet'), None):
    assert shapes(lw) == reference


def test_a_model_without_a_lowering_traces_its_networks_own():
  """``lowering=None`` resolves, at trace time, to the backend's lowering for that network:
  Inception v3 traces the program of ``for_backend(network='inception_v3')``, which on the CPU
  is not GoogLeNet's (the 1x1 convolutions stay convolutions)."""
  def program(lw):
    model = models.create('inception_v3', width_multiplier=0.125, aux_adaptive=True, lowering=lw)
    x = jax.ShapeDtypeStruct((1, 75, 75, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), x)
    return str(jax.make_jaxpr(lambda v, x: model.apply(v, x))(variables, x))
  own = program(None)
  assert own == program(lowering.for_backend(network='inception_v3'))
  if jax.default_backend() == 'cpu':
    assert own != program(CPU)


def test_models_reject_a_lowering_that_is_not_one():
  from inception_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match='lowering must be'):
    models.create('googlenet', lowering='plain')


# Winograd F(4x4, 3x3): (H, W, padding) forms whose tiling leaves no remainder, one, two and three
# rows, VALID (v3's stem) and asymmetric padding.
WINOGRAD_FORMS = [
    (8, 8, ((1, 1), (1, 1))),
    (7, 9, ((1, 1), (1, 1))),
    (10, 6, ((0, 0), (0, 0))),
    (5, 11, ((0, 1), (2, 1))),
    (3, 3, ((1, 1), (1, 1))),
]


@pytest.mark.parametrize('height,width,padding', WINOGRAD_FORMS)
def test_winograd_matches_direct_convolution(height, width, padding):
  """Values and both gradients within float32 rounding of XLA's direct convolution."""
  rs = np.random.RandomState(4)
  x = jnp.asarray(rs.standard_normal((2, height, width, 5)), jnp.float32)
  kernel = jnp.asarray(rs.standard_normal((3, 3, 5, 6)), jnp.float32)
  direct = lambda x, k: conv_lib._lax_conv(x, k, (1, 1), padding)  # pylint: disable=protected-access
  tiled = lambda x, k: winograd.winograd_conv3x3(x, k, padding)
  y = direct(x, kernel)
  w = jnp.asarray(rs.standard_normal(y.shape), jnp.float32)
  np.testing.assert_allclose(jax.jit(tiled)(x, kernel), y, atol=1e-5 * float(abs(y).max()))
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)) * w)
  for a, b in zip(jax.grad(loss(direct), (0, 1))(x, kernel),
                  jax.jit(jax.grad(loss(tiled), (0, 1)))(x, kernel)):
    np.testing.assert_allclose(b, a, atol=1e-5 * float(abs(a).max()))


def _uses_winograd(module, x):
  """Whether ``module`` traces Winograd's 36 batched matrix products."""
  variables = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)
  program = jax.make_jaxpr(module.apply)(variables, x).jaxpr
  return any(e.params['dimension_numbers'][1] != ((), ()) and e.invars[0].aval.shape[0] == 36
             for e in _primitives(program, 'dot_general'))


def test_winograd_eligibility():
  """float32 or bfloat16 3x3 stride 1 with >= winograd.MIN_CHANNELS in and out (measured
  faster), only with ``winograd`` (``bench --plain winograd`` turns it off)."""
  wide = winograd.MIN_CHANNELS
  x = jnp.zeros((2, 9, 9, wide), jnp.float32)
  conv = lambda features=wide, kernel=(3, 3), stride=1, dtype=jnp.float32, on=True: (
      lowering.FastConv(features, kernel, stride, padding=1, dtype=dtype, winograd=on))
  assert _uses_winograd(conv(), x) and _uses_winograd(conv(dtype=jnp.bfloat16), x)
  for module in (conv(stride=2), conv(features=wide - 1), conv(kernel=(1, 3)),
                 conv(dtype=jnp.float16), conv(on=False), nn.Conv(wide, (3, 3), padding=1)):
    assert not _uses_winograd(module, x), module


@pytest.mark.slow  # compiles four wide convolutions; Winograd's numbers are tested above
def test_fast_conv_with_winograd_matches_nn_conv():
  """FastConv computes nn.Conv's numbers by Winograd (bfloat16: within one rounding, the
  transforms run in float32)."""
  x = jnp.asarray(np.random.RandomState(5).standard_normal((2, 9, 9, 64)), jnp.float32)
  _check(*_conv_pair(64, (3, 3), 1, 1, use_bias=True), x)
  _check(*_conv_pair(64, (3, 3), 1, 1, dtype=jnp.bfloat16), x, rtol=1e-2)


def test_norm_and_pool_lowerings_against_the_plain_flax_and_xla_code():
  """FastBatchNorm traces another program than nn.BatchNorm; the plain max pool is autodiff of
  reduce_window (select-and-scatter), the CPU's has the same gradient without it (what
  ``bench --plain norm|pool`` measures)."""
  x = jnp.asarray(np.random.RandomState(0).standard_normal((2, 9, 9, 4)), jnp.float32)
  kw = dict(use_running_average=False, epsilon=1e-3)
  plain_bn, fast_bn = PLAIN.norm(**kw), CPU.norm(**kw)
  variables = plain_bn.init(jax.random.PRNGKey(0), x)
  bn_program = lambda module: str(jax.make_jaxpr(jax.grad(lambda v: jnp.sum(
      module.apply(v, x, mutable=['batch_stats'])[0] ** 2)))(variables))
  pool_program = lambda f: str(jax.make_jaxpr(jax.grad(lambda x: jnp.sum(f(x) ** 2)))(x))
  plain_pool = lambda x: layers.max_pool(x, 3, 2, ceil_mode=True, lowering=PLAIN)
  fast_pool = lambda x: layers.max_pool(x, 3, 2, ceil_mode=True, lowering=CPU)
  assert bn_program(fast_bn) != bn_program(plain_bn)
  assert 'select_and_scatter_add' not in pool_program(fast_pool)  # the gather-form gradient
  assert 'select_and_scatter_add' in pool_program(plain_pool)
  np.testing.assert_allclose(jax.grad(lambda x: jnp.sum(fast_pool(x) ** 2))(x),
                             jax.grad(lambda x: jnp.sum(plain_pool(x) ** 2))(x), atol=1e-6)


def _reference_max_pool(x, window, stride, padding, ceil_mode):
  window, padding = layers.pair(window), layers.pair(padding)
  stride = layers.pair(stride) if stride is not None else window
  (oh, ow), (pad_h, pad_w) = layers._pool_geometry(x.shape[1:3], window, stride, padding,
                                                   ceil_mode)
  y = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *window, 1), (1, *stride, 1),
                            ((0, 0), pad_h, pad_w, (0, 0)))
  return y[:, :oh, :ow, :]


@pytest.mark.parametrize('size,window,stride,padding,ceil_mode', [
    (9, 3, 2, 0, True), (8, 3, 2, 0, True), (9, 3, 1, 1, True), (8, 2, 2, 0, True),
    (35, 3, 2, 0, False), (7, 3, 2, 1, False)])
def test_max_pool_gradient_matches_autodiff(size, window, stride, padding, ceil_mode):
  x = jnp.asarray(np.random.RandomState(0).standard_normal((2, size, size, 3)), jnp.float32)
  args = (window, stride, padding, ceil_mode)
  w = jnp.asarray(np.random.RandomState(1).standard_normal(
      _reference_max_pool(x, *args).shape), jnp.float32)
  ref = lambda x: jnp.sum(_reference_max_pool(x, *args) * w)
  new = lambda x: jnp.sum(layers.max_pool(x, *args, lowering=CPU) * w)
  np.testing.assert_array_equal(layers.max_pool(x, *args, lowering=CPU),
                                _reference_max_pool(x, *args))
  np.testing.assert_allclose(jax.jit(jax.grad(new))(x), jax.grad(ref)(x), atol=1e-6)


def _numpy_max_pool_grad(x, g, window, stride, padding, ceil_mode):
  """PyTorch's rule, window by window: the whole gradient to the first maximum, row-major."""
  (oh, ow), _ = layers._pool_geometry(x.shape[1:3], (window,) * 2, (stride,) * 2,
                                      (padding,) * 2, ceil_mode)
  dx = np.zeros_like(x)
  for b, p, q, ch in np.ndindex(x.shape[0], oh, ow, x.shape[3]):
    best = None
    for i, j in np.ndindex(window, window):
      r, c = p * stride - padding + i, q * stride - padding + j
      if 0 <= r < x.shape[1] and 0 <= c < x.shape[2] and (best is None or
                                                          x[b, r, c, ch] > x[best + (ch,)]):
        best = (b, r, c)
    dx[best + (ch,)] += g[b, p, q, ch]
  return dx


@pytest.mark.parametrize('size,window,stride,padding,ceil_mode', [
    (9, 3, 2, 0, True), (9, 3, 1, 1, True), (8, 2, 2, 0, True), (10, 3, 2, 0, False),
    (7, 3, 2, 1, False)])
def test_max_pool_gradient_with_ties_follows_pytorch(size, window, stride, padding, ceil_mode):
  """ReLU-like input (half zeros, values rounded so windows tie) against a window-by-window
  reference of PyTorch's rule."""
  rs = np.random.RandomState(4)
  x = np.maximum(rs.standard_normal((2, size, size, 3)), 0).round(1).astype(np.float32)
  args = (window, stride, padding, ceil_mode)
  pool = lambda x: layers.max_pool(x, *args, lowering=CPU)
  y = pool(jnp.asarray(x))
  g = rs.standard_normal(y.shape).astype(np.float32)
  dx = jax.jit(lambda x: jax.vjp(pool, x)[1](g)[0])(x)
  np.testing.assert_allclose(np.asarray(dx), _numpy_max_pool_grad(x, g, *args), atol=1e-6)


def test_max_pool_gradient_goes_to_the_first_maximum():
  """Ties (e.g. ReLU zeros) send the whole gradient to the first maximum, as PyTorch does."""
  x = jnp.zeros((1, 2, 2, 1), jnp.float32)
  g = jax.grad(lambda x: jnp.sum(layers.max_pool(x, 2, 2, lowering=CPU)))(x)
  np.testing.assert_array_equal(np.asarray(g)[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])


@pytest.mark.slow  # compiles bfloat16 variants of pools tested above in float32
@pytest.mark.parametrize('window,stride,padding,ceil_mode', [(3, 1, 1, False), (3, 2, 0, True),
                                                             (5, 3, 0, False)])
def test_bfloat16_pools_reduce_in_float32(window, stride, padding, ceil_mode):
  """bf16 average pools sum in float32 and round once (as PyTorch accumulates); max pools take
  their maximum in float32 too, which is exact, because XLA:CPU otherwise rounds every pairwise
  maximum back to bf16 (3x slower)."""
  x = jnp.asarray(np.random.RandomState(7).standard_normal((2, 11, 11, 5)) * 10, jnp.bfloat16)
  args = (window, stride, padding, ceil_mode)
  np.testing.assert_array_equal(
      np.asarray(layers.avg_pool(x, *args), np.float32),
      np.asarray(layers.avg_pool(x.astype(jnp.float32), *args).astype(jnp.bfloat16), np.float32))
  pool = lambda x: layers.max_pool(x, *args, lowering=CPU)
  y = pool(x)
  assert y.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(y, np.float32),
                                np.asarray(pool(x.astype(jnp.float32))))
  # Under differentiation the forward is reduce_window (see the next test).
  program = jax.make_jaxpr(lambda x: jax.vjp(pool, x))(x)
  reductions = _primitives(program.jaxpr, 'reduce_window_max')
  assert reductions and all(e.invars[0].aval.dtype == jnp.float32 for e in reductions)


def test_max_pool_forward_is_sliced_only_without_a_gradient():
  """With ``sliced_eval_pool`` (the CPU's), evaluation takes the running maximum of strided
  slices, and a differentiated forward keeps reduce_window (XLA fuses the slices badly into the
  training step); both give reduce_window's numbers (tests above), and without the flag it is
  reduce_window throughout."""
  x = jnp.asarray(np.random.RandomState(8).standard_normal((2, 9, 11, 3)), jnp.float32)

  def reduce_windows(lw):  # fresh functions: make_jaxpr caches traces by function
    pool = lambda x: layers.max_pool(x, 3, 2, ceil_mode=True, lowering=lw)
    count = lambda f: len(_primitives(jax.make_jaxpr(f)(x).jaxpr, 'reduce_window_max'))
    return count(pool), count(lambda x: jax.vjp(pool, x))

  assert reduce_windows(CPU) == (0, 1)
  pool = lambda x: layers.max_pool(x, 3, 2, ceil_mode=True, lowering=CPU)
  np.testing.assert_array_equal(jax.jit(pool)(x), jax.vjp(pool, x)[0])
  assert reduce_windows(dataclasses.replace(CPU, sliced_eval_pool=False)) == (1, 1)


@pytest.mark.parametrize('train', [True, False])
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_fast_batch_norm_matches_nn_batch_norm(train, dtype):
  """Values, gradients (input, scale, bias, through a ReLU) and running statistics."""
  x = jnp.asarray(np.random.RandomState(0).standard_normal((4, 5, 5, 6)) * 3 + 1, dtype)
  kw = dict(use_running_average=not train, momentum=0.9, epsilon=1e-3, dtype=dtype)
  plain, fast = nn.BatchNorm(**kw), batch_norm_lib.FastBatchNorm(**kw)
  jax.tree.map(np.testing.assert_array_equal, plain.init(jax.random.PRNGKey(0), x),
               fast.init(jax.random.PRNGKey(0), x))
  variables = {'params': {'scale': jnp.linspace(0.5, 2, 6), 'bias': jnp.linspace(-1, 1, 6)},
               'batch_stats': {'mean': jnp.linspace(0, 1, 6), 'var': jnp.linspace(1, 2, 6)}}
  w = jnp.asarray(np.random.RandomState(1).standard_normal(x.shape), jnp.float32)

  def loss(module):
    def f(v, x):
      y, updates = module.apply(v, x, mutable=['batch_stats'])
      return jnp.sum(jax.nn.relu(y.astype(jnp.float32)) * w), (y, updates)
    return f

  (l0, (y0, u0)), g0 = jax.value_and_grad(loss(plain), (0, 1), has_aux=True)(variables, x)
  (l1, (y1, u1)), g1 = jax.jit(jax.value_and_grad(loss(fast), (0, 1), has_aux=True))(
      variables, x)
  tol = 1e-5 if dtype == jnp.float32 else 2e-2
  assert y1.dtype == y0.dtype
  np.testing.assert_allclose(np.asarray(y1, np.float32), np.asarray(y0, np.float32),
                             rtol=tol, atol=tol)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), u0, u1)
  for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    np.testing.assert_allclose(b, a, atol=(tol * 10) * np.abs(a).max(), rtol=0)


def test_fast_batch_norm_falls_back_to_nn_batch_norm():
  x = jnp.asarray(np.random.RandomState(0).standard_normal((4, 3, 6)), jnp.float32)
  for kw in (dict(axis=1), dict(use_scale=False), dict(use_fast_variance=False)):
    plain = nn.BatchNorm(use_running_average=False, **kw)
    fast = batch_norm_lib.FastBatchNorm(use_running_average=False, **kw)
    v = plain.init(jax.random.PRNGKey(0), x)
    jax.tree.map(np.testing.assert_array_equal, v, fast.init(jax.random.PRNGKey(0), x))
    np.testing.assert_allclose(fast.apply(v, x, mutable=['batch_stats'])[0],
                               plain.apply(v, x, mutable=['batch_stats'])[0], rtol=1e-6)
