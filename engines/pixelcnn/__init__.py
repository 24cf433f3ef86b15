"""PixelCNN: an autoregressive model of images, p(x) = Π_i p(x_i | x_<i) in raster order.

`layers` (the masked convolutions and the gated block), `net` (the gated PixelCNN), `raster`
(pixel-by-pixel sampling and completion, step by step) and `model` (the engine).
"""
