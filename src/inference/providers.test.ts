import path from 'node:path';
import { createSessionWithFallback } from './providers';

const CNN = path.resolve(__dirname, '../../models/fashion-cnn/1/model.onnx');

describe('execution providers', () => {
  it('falls back from cuda to cpu on a machine without CUDA and says which one runs', async () => {
    const warnings: string[] = [];
    const result = await createSessionWithFallback(CNN, ['cuda', 'cpu'], {
      intraOpThreads: 1,
      onFallback: (provider, _reason, next) => warnings.push(`${provider}->${next}`),
    });
    try {
      expect(result.provider).toBe('cpu');
      expect(result.fallbacks.map((f) => f.provider)).toEqual(['cuda']);
      expect(warnings).toEqual(['cuda->cpu']);
      expect(result.session.inputNames).toEqual(['image']);
    } finally {
      await result.session.release();
    }
  });

  it('fails with every reason when no provider can load the model', async () => {
    await expect(createSessionWithFallback(CNN, ['cuda'], { intraOpThreads: 1 })).rejects.toThrow(/no execution provider could load .*cuda:/);
  });
});
