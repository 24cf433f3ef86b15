"""Showing uint8 image grids crisply: integer nearest-neighbour upscaling, centred."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget


def to_qimage(arr: np.ndarray) -> QImage:
    """uint8 (H, W), (H, W, 1) or (H, W, 3) → QImage that owns a copy of the pixels."""
    a = np.ascontiguousarray(arr, dtype=np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = np.ascontiguousarray(a[..., 0])
    h, w = a.shape[:2]
    if a.ndim == 2:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8)
    elif a.shape[2] == 3:
        img = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888)
    else:
        raise ValueError(f"cannot show an image of shape {arr.shape}")
    return img.copy()  # detach from the numpy buffer


def thumbnail_pixmap(arr: np.ndarray, side: int) -> QPixmap:
    """A square-ish pixmap at most `side` px, nearest-neighbour (thumbnails are tiny grids)."""
    img = to_qimage(arr)
    scale = max(1, side // max(img.width(), img.height()))
    if scale > 1:
        img = img.scaled(img.width() * scale, img.height() * scale, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.FastTransformation)
    elif max(img.width(), img.height()) > side:
        img = img.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return QPixmap.fromImage(img)


class ImageGrid(QWidget):
    """Paints one image as large as fits, at an integer scale when it can (pixels stay square
    and sharp); keeps the previous image until `set_image` is called with a new one."""

    def __init__(self, parent=None, placeholder: str = ""):
        super().__init__(parent)
        self._image: QImage | None = None
        self.array: np.ndarray | None = None
        self._placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(96, 96)

    def set_image(self, arr: np.ndarray | None) -> None:
        self.array = arr  # what is shown, for 'Export as PNG…'
        self._image = None if arr is None else to_qimage(arr)
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def image_size(self) -> QSize | None:
        return None if self._image is None else self._image.size()

    def has_image(self) -> bool:
        return self._image is not None

    def sizeHint(self) -> QSize:
        return QSize(256, 256)

    def target_rect(self) -> QRect:
        img = self._image
        w, h = self.width(), self.height()
        if img is None or img.width() == 0:
            return QRect()
        fit = min(w / img.width(), h / img.height())
        scale = int(fit) if fit >= 1 else fit
        tw, th = int(img.width() * scale), int(img.height() * scale)
        return QRect((w - tw) // 2, (h - th) // 2, tw, th)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Base))
        if self._image is None:
            if self._placeholder:
                p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
                p.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                           self._placeholder)
            return
        rect = self.target_rect()
        smooth = rect.width() < self._image.width()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        p.drawImage(rect, self._image)
        p.setPen(QColor(0, 0, 0, 60))
        p.drawRect(rect.adjusted(0, 0, -1, -1))
