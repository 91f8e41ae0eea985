"""Attribution methods, registered under the reference tool's keywords and readable names.

Importing this package declares every built-in method in :data:`EXPLAINERS`;
each method's module is imported the first time the method is looked up.
"""

from deepleak.core.explainers.base import Explainer, NoSettings, PassCount, select_targets
from deepleak.core.explainers.registry import EXPLAINERS

_PACKAGE = "deepleak.core.explainers"

# Name, aliases and defining module of every built-in method, in the reference
# tool's order. Modules load on first use, so validating params.yaml or running
# one method's stage does not import every method's dependencies.
for _module, _name, *_aliases in (
    ("gradient", "SMAP", "saliency", "saliency_map", "vanilla_gradient"),
    ("relu_rules", "GBackProp", "guided_backprop", "guided_backpropagation", "guidedbackprop"),
    ("gradient", "IG", "integrated_gradients", "integratedgradients"),
    ("shapley", "SHAP", "gradient_shap", "expected_gradients", "shap_gradient"),
    ("surrogate", "LIME", "lime"),
    ("noise_tunnel", "SmoothGrad", "smooth_grad", "smoothgrad_saliency", "noise_tunnel"),
    ("noise_tunnel", "VarGrad", "var_grad", "variance_grad"),
    ("relu_rules", "DeepLift", "deeplift", "deep_lift"),
    ("perturbation", "Occlusion", "occlusion", "occ"),
    ("cam", "GGC", "gradcam_plus_plus", "gradcam++", "gradcampp", "grad_cam_plus_plus"),
    ("cam", "GC", "gradcam", "grad_cam"),
    ("shapley", "KSHAP", "kernel_shap", "kernelshap"),
    ("relu_rules", "DCAttr", "deconvolution", "deconvnet", "deconv"),
    ("gradient", "INGRAttr", "input_x_gradient", "inputxgradient", "gradient_x_input", "gradient_times_input"),
    ("prototype", "ProtoDa", "protodash", "proto_dash", "prototypes"),
    ("anchors", "Anchor", "anchors", "anchor_image"),
    ("relu_rules", "LRP", "layerwise_relevance_propagation", "layer_wise_relevance_propagation", "lrp_epsilon"),
    ("perturbation", "FAblation", "feature_ablation", "featureablation", "ablation"),
    ("perturbation", "FPermutation", "feature_permutation", "featurepermutation", "permutation"),
    ("cam", "GuidedGC", "guided_gradcam", "guided_grad_cam"),
):
    EXPLAINERS.declare(f"{_PACKAGE}.{_module}", _name, *_aliases)


def create_explainer(name: str, settings: dict | None = None, seed: int = 0) -> Explainer:
    """Instantiate the method registered under ``name`` (keyword or readable name)."""
    return EXPLAINERS.get(name)(settings, seed=seed)


__all__ = ["EXPLAINERS", "Explainer", "NoSettings", "PassCount", "create_explainer", "select_targets"]
