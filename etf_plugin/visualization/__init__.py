from .long_tail_eval import (accuracy_vs_count_figure,
                             add_figure_to_visualizer, figure_to_rgb,
                             label_shift_figure)
from .nc_curves import (latest_record_per_iter, load_nc_records,
                        nc_curves_figure, plot_nc_curves, save_nc_records)
from .nc_depth import nc_depth_figure

__all__ = [
    'load_nc_records', 'save_nc_records', 'latest_record_per_iter',
    'nc_curves_figure', 'plot_nc_curves', 'nc_depth_figure',
    'label_shift_figure', 'accuracy_vs_count_figure',
    'add_figure_to_visualizer', 'figure_to_rgb'
]
