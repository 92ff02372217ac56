"""Test-only metric: a checksum of every prediction, so that two evaluations can be shown
to have seen the same pixels even when a randomly initialised model scores ~0 mAP.

``FANMM_TEST_SLEEP`` (seconds per batch) slows evaluation down so that a test can kill
it in the middle of a run.
"""
import os
import os.path as osp
import time

import numpy as np
from mmengine.evaluator import BaseMetric

from fan_mm.registry import register_metric


@register_metric
class PredictionDigest(BaseMetric):
    default_prefix = 'digest'

    def process(self, data_batch, data_samples):
        delay = float(os.environ.get('FANMM_TEST_SLEEP', 0))
        if delay:
            time.sleep(delay)
        for sample in data_samples:
            if 'pred_sem_seg' in sample:
                pred = sample['pred_sem_seg']['data'].cpu().numpy().astype(np.float64)
                weights = 1.0 + np.arange(pred.size).reshape(pred.shape) % 7
                value = float((pred * weights).sum())
            else:
                inst = sample['pred_instances']
                value = float(inst['bboxes'].double().sum() + 1000 * inst['scores'].double().sum())
            # Key by file stem: the same image under its -C name (x.jpg -> x.png) sorts alike.
            self.results.append((osp.splitext(osp.basename(sample['img_path']))[0], value))

    def compute_metrics(self, results):
        results = sorted(results)
        return {'value': float(sum((i + 1) * v for i, (_, v) in enumerate(results))), 'images': float(len(results))}
