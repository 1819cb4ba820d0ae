import sys

import ringloader as rl

root = sys.argv[1] if len(sys.argv) > 1 else "demo-data"  # ROOT/<class>/<image>, as torchvision's
train = rl.ImageFolder(root, size=224, random_crop=True, flip=True)  # decoded in C++ in the workers
loader = rl.DataLoader(train, batch_size=32, shuffle=True, num_workers=2, persistent_workers=True, seed=1)
for epoch in range(2):
    loader.set_epoch(epoch)
    n = 0
    for images, labels in loader:  # zero-copy views of a shared-memory slot (torch tensors if torch
        n += len(labels)           # is installed, else NumPy arrays): uint8 N x 224 x 224 x 3
    print(f"epoch {epoch}: {n} images in {len(loader)} batches of {tuple(images.shape[1:])}, "
          f"{len(train.classes)} classes")
