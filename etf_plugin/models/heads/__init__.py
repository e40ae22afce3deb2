from .etf_head import ETFHead

__all__ = ['ETFHead']
