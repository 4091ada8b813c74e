"""Networks: the small FCN, the encoder and the FCN/SegNet/U-Net builders, the layer DAG, and
the loops that train and apply them."""

from .dag import Edge, LayerDAG, Node, activation, dense_dag, mlp_dag, random_dag, random_inputs, residual_dag
from .resolution import FCN, Encoder, SegNetStyle, UNet, grow_fcn
from .small_fcn import SmallFCN, bilinear_kernel, conv_block
from .training import count_parameters, fit, pixel_loss, predict

__all__ = ["Edge", "LayerDAG", "Node", "activation", "dense_dag", "mlp_dag", "random_dag", "random_inputs", "residual_dag",
           "FCN", "Encoder", "SegNetStyle", "UNet", "grow_fcn", "SmallFCN", "bilinear_kernel", "conv_block",
           "count_parameters", "fit", "pixel_loss", "predict"]
