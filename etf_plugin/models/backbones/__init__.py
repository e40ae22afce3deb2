from .resnet32_cifar import ResNet32_CIFAR

__all__ = ['ResNet32_CIFAR']
