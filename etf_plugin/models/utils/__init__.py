from .cosine_classifier import CosineClassifier
from .etf_classifier import ETFClassifier
from .features import FEATURE_STAGES, StageFeatures, extract_features
from .normalized_classifier import NormalizedClassifier

__all__ = [
    'CosineClassifier', 'ETFClassifier', 'NormalizedClassifier',
    'FEATURE_STAGES', 'StageFeatures', 'extract_features'
]
