"""Helpers shared by the model tests."""
import pytest

from probvae.inference import objectives


@pytest.fixture(scope="session")
def enum_loss():
    """``loss(model, params, x, num_particles)``: the ``enum`` objective's loss of a built model
    at ``params`` on ``x``, evaluated once (no gradients) on the model's backend."""
    def loss(model, params, x, num_particles):
        bk = model.bk
        elbo, _ = objectives.build("enum", bk, num_particles=num_particles)
        if bk.name == "numpyro":
            import jax
            return float(elbo.loss(jax.random.PRNGKey(0), {}, bk.with_params(model.model, params),
                                   bk.with_params(model.guide, params), bk.asarray(x)))
        import torch
        with torch.no_grad():
            return float(bk.with_params(lambda v: elbo.loss(model.model, model.guide, v),
                                        params)(bk.asarray(x)))
    return loss
